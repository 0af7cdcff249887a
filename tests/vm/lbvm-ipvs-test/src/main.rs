//! lbvm-ipvs-test — the IPVS scenario that runs as /lbvm-test inside the QEMU
//! VM built by vm/build-image.sh (real Debian kernel, ip_vs + schedulers
//! loaded by /init, lo up, ipvsadm 1.31 available at /sbin/ipvsadm).
//!
//! A test program in its own crate (not part of lbctl): it uses `libc` and
//! `unsafe` directly to drop privileges for the unprivileged probe, and shares
//! the hand-assembled netlink messages with lbctl's unit tests by including
//! `src/ipvs/golden.rs` (which lbctl itself only compiles for its tests).
//!
//! The last part (`cli.*` checks) runs the real `lbctl lb` command line, a static `lbctl`
//! that the lane appends as /bin/lbctl, and compares what it does with ipvsadm's view.
//!
//! Prints one `LBVM: CHECK <name> ok|FAIL <detail>` line per check, then
//! `LBVM: RESULT pass|fail`, and exits 0 only when every check passed.
//! It flushes IPVS when it starts and when it ends: never run it on a host
//! whose IPVS table matters.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lbctl::ipvs::{
    convert, text, Client, DestEntry, Destination, Error, Family, Forward, ListKind, ListOptions,
    Netmask, Rule, SaveDialect, Scheduler, Service, ServiceEntry, ServiceFlags, ServiceKey,
    Timeouts, Tunnel, TunnelType, ValidationError,
};

/// The hand-assembled messages lbctl's wire unit tests also use.
#[path = "../../../../src/ipvs/golden.rs"]
#[allow(dead_code)]
mod golden;
mod lbrun;

const IPVSADM: &str = "/sbin/ipvsadm";
/// The schedulers /init loads (Debian 6.1 cloud kernel; `twos` is 6.2+).
const SCHEDULERS: [&str; 13] = [
    "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh",
];

type Check = Result<String, String>;

struct Report {
    ok: usize,
    failed: Vec<String>,
}

impl Report {
    fn check(&mut self, name: &str, r: Check) {
        match r {
            Ok(detail) => {
                self.ok += 1;
                println!(
                    "LBVM: CHECK {name} ok{}{}",
                    if detail.is_empty() { "" } else { " " },
                    one_line(&detail)
                );
            }
            Err(detail) => {
                self.failed.push(name.to_string());
                let mut lines = detail.lines();
                println!("LBVM: CHECK {name} FAIL {}", lines.next().unwrap_or(""));
                for l in lines {
                    println!("    | {l}");
                }
            }
        }
        let _ = std::io::stdout().flush();
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " / ")
}

fn sa(s: &str) -> SocketAddr {
    s.parse().expect("socket address literal")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("IP literal")
}

fn e2s(e: Error) -> String {
    format!("unexpected error: {e}")
}

/// Run ipvsadm; Ok(stdout) on exit 0, Err(stderr…) otherwise.
fn ipvsadm(args: &[&str]) -> Result<String, String> {
    ipvsadm_stdin(args, None)
}

fn ipvsadm_stdin(args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut cmd = Command::new(IPVSADM);
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {IPVSADM}: {e}"))?;
    if let Some(text) = input {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "ipvsadm {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Byte-for-byte comparison with the first difference in the detail.
fn same_text(what: &str, mine: &str, theirs: &str) -> Check {
    if mine == theirs {
        return Ok(format!("{what}: {} lines identical", mine.lines().count()));
    }
    let (m, t): (Vec<_>, Vec<_>) = (mine.lines().collect(), theirs.lines().collect());
    let i = (0..m.len().max(t.len()))
        .find(|&i| m.get(i) != t.get(i))
        .unwrap_or(0);
    let mut d = format!(
        "{what}: first difference at line {}\nlbctl:   {:?}\nipvsadm: {:?}\n--- lbctl ---\n",
        i + 1,
        m.get(i),
        t.get(i)
    );
    d.push_str(mine);
    d.push_str("--- ipvsadm ---\n");
    d.push_str(theirs);
    Err(d)
}

fn find<'a>(entries: &'a [ServiceEntry], key: &ServiceKey) -> Option<&'a ServiceEntry> {
    entries.iter().find(|e| e.service.key == *key)
}

fn dest_set(dests: &[DestEntry]) -> Vec<Destination> {
    let mut v: Vec<Destination> = dests.iter().map(|d| d.dest.clone()).collect();
    v.sort_by_key(|d| (d.addr, d.port));
    v
}

fn sorted_dests(mut v: Vec<Destination>) -> Vec<Destination> {
    v.sort_by_key(|d| (d.addr, d.port));
    v
}

/// The service as listed equals `want` and its real servers are exactly `dests`.
fn expect_state(c: &mut Client, want: &Service, dests: Vec<Destination>) -> Check {
    let e = c.service(&want.key).map_err(e2s)?;
    if e.service != *want {
        return Err(format!(
            "service differs\nwant {want:?}\ngot  {:?}",
            e.service
        ));
    }
    let (got, want_d) = (dest_set(&e.dests), sorted_dests(dests));
    if got != want_d {
        return Err(format!(
            "real servers differ\nwant {want_d:?}\ngot  {got:?}"
        ));
    }
    Ok(format!("{} with {} real servers", e.service, got.len()))
}

/// The kernel refused with `errno`, and the message reads like ipvsadm's.
fn expect_kernel_err<T: std::fmt::Debug>(r: Result<T, Error>, errno: i32, text_has: &str) -> Check {
    match r {
        Err(e @ Error::Kernel { .. }) if e.errno() == Some(errno) => {
            let s = e.to_string();
            if s.contains(text_has) {
                Ok(s)
            } else {
                Err(format!("errno ok but message lacks {text_has:?}: {s}"))
            }
        }
        Err(e) => Err(format!("wanted errno {errno}, got: {e}")),
        Ok(v) => Err(format!("wanted errno {errno}, got success: {v:?}")),
    }
}

/// Refused by validation, and no request reached the kernel.
fn refused<T: std::fmt::Debug>(
    c: &mut Client,
    f: impl FnOnce(&mut Client) -> Result<T, Error>,
    pred: impl Fn(&ValidationError) -> bool,
) -> Check {
    let before = c.requests_sent();
    let r = f(c);
    let sent = c.requests_sent() - before;
    match r {
        Err(Error::Invalid { what, source }) if pred(&source) && sent == 0 => Ok(format!(
            "refused before any syscall: {}",
            Error::Invalid { what, source }
        )),
        Err(e) => Err(format!("unexpected error ({sent} requests sent): {e}")),
        Ok(v) => Err(format!("accepted: {v:?}")),
    }
}

fn list_cmp(c: &mut Client, kind: ListKind, args: &[&str]) -> Check {
    let info = c.info().map_err(e2s)?;
    let entries = c.services().map_err(e2s)?;
    let mine = text::format_list(Some(&info), &entries, ListOptions { kind, exact: false });
    same_text(
        &format!("ipvsadm {}", args.join(" ")),
        &mine,
        &ipvsadm(args)?,
    )
}

fn save_cmp(c: &mut Client) -> Check {
    let entries = c.services().map_err(e2s)?;
    same_text(
        "ipvsadm -S -n",
        &text::save(&entries, SaveDialect::Ipvsadm),
        &ipvsadm(&["-S", "-n"])?,
    )
}

/// Listing without counters/connection numbers, in a canonical order.
fn normalized(entries: &[ServiceEntry]) -> Vec<(Service, Vec<Destination>)> {
    let mut v: Vec<_> = entries
        .iter()
        .map(|e| (e.service.clone(), dest_set(&e.dests)))
        .collect();
    v.sort_by_key(|(s, _)| s.to_string());
    v
}

fn main() {
    if std::env::args().any(|a| a == "--unprivileged-probe") {
        unprivileged_probe();
    }
    let t0 = Instant::now();
    let mut r = Report {
        ok: 0,
        failed: Vec::new(),
    };
    let mut c = match Client::open() {
        Ok(c) => c,
        Err(e) => {
            r.check("family", Err(e.to_string()));
            println!("LBVM: RESULT fail (cannot talk to IPVS)");
            std::process::exit(1);
        }
    };
    r.check(
        "family",
        Ok(format!(
            "\"IPVS\" generic netlink family id {}",
            c.family_id()
        )),
    );
    r.check(
        "info",
        c.info().map_err(e2s).and_then(|i| {
            if i.version_string() == "1.2.1" && i.conn_tab_size > 0 {
                Ok(format!(
                    "IPVS {} conn_tab_size {}",
                    i.version_string(),
                    i.conn_tab_size
                ))
            } else {
                Err(format!("unexpected {i:?}"))
            }
        }),
    );
    r.check(
        "flush-start",
        c.flush()
            .map_err(e2s)
            .and_then(|_| match c.services().map_err(e2s)?.len() {
                0 => Ok(String::new()),
                n => Err(format!("{n} services left")),
            }),
    );

    golden_bytes(&mut c, &mut r);
    schedulers(&mut c, &mut r);
    variety(&mut c, &mut r);

    // the whole table against ipvsadm, in every listing format
    for (name, kind, args) in [
        ("state.list", ListKind::Plain, &["-L", "-n"][..]),
        ("state.stats", ListKind::Stats, &["-L", "-n", "--stats"][..]),
        ("state.rate", ListKind::Rate, &["-L", "-n", "--rate"][..]),
        (
            "state.thresholds",
            ListKind::Thresholds,
            &["-L", "-n", "--thresholds"][..],
        ),
        (
            "state.persistent-conn",
            ListKind::PersistentConn,
            &["-L", "-n", "--persistent-conn"][..],
        ),
        (
            "state.tun-info",
            ListKind::TunInfo,
            &["-L", "-n", "--tun-info"][..],
        ),
    ] {
        let res = list_cmp(&mut c, kind, args);
        r.check(name, res);
    }
    let res = save_cmp(&mut c);
    r.check("state.save", res);

    save_restore(&mut c, &mut r);
    delete_services(&mut c, &mut r);
    errors(&mut c, &mut r);
    created_by_ipvsadm(&mut c, &mut r);
    config(&mut c, &mut r);
    traffic(&mut c, &mut r);
    permission(&mut r);
    cli(&mut c, &mut r);
    lbrun::lb_run(&mut c, &mut r);

    r.check("flush-end", c.flush().map_err(e2s).map(|_| String::new()));
    let total = r.ok + r.failed.len();
    println!(
        "LBVM: SUMMARY {} of {total} checks ok, {} netlink requests, {:.2}s",
        r.ok,
        c.requests_sent(),
        t0.elapsed().as_secs_f64()
    );
    if r.failed.is_empty() {
        println!("LBVM: RESULT pass");
    } else {
        println!(
            "LBVM: RESULT fail ({} failed: {})",
            r.failed.len(),
            r.failed.join(" ")
        );
        std::process::exit(1);
    }
}

/// Hand-assembled byte vectors (ipvs::golden, also checked against our
/// encoder by the unit tests) are accepted by the kernel and mean what we say.
fn golden_bytes(c: &mut Client, r: &mut Report) {
    let vip = ServiceKey::tcp(sa("198.18.0.100:80"));
    let mh = Service::new(vip, "mh").flags(ServiceFlags::MH_FALLBACK | ServiceFlags::MH_PORT);
    let res = (|| {
        c.request_bytes(&golden::NEW_SERVICE_MH).map_err(e2s)?;
        c.request_bytes(&golden::NEW_DEST_DR).map_err(e2s)?;
        expect_state(c, &mh, vec![Destination::dr(sa("198.18.0.11:80"))])?;
        same_text(
            "ipvsadm -S -n",
            "-A -t 198.18.0.100:80 -s mh -b mh-fallback,mh-port\n-a -t 198.18.0.100:80 -r 198.18.0.11:80 -g -w 1\n",
            &ipvsadm(&["-S", "-n"])?,
        )
    })();
    r.check("golden.new-service+new-dest", res);

    let res = (|| {
        c.request_bytes(&golden::NEW_SERVICE_FWMARK6).map_err(e2s)?;
        let want = Service::new(ServiceKey::fwmark(43, Family::Inet6), "lc")
            .persistent(360)
            .netmask(Netmask::V6(64));
        expect_state(c, &want, vec![])?;
        let s = ipvsadm(&["-S", "-n"])?;
        if s.lines().any(|l| l == "-A -f 43 -6 -s lc -p 360 -M 64") {
            Ok("ipvsadm shows -A -f 43 -6 -s lc -p 360 -M 64".into())
        } else {
            Err(format!("ipvsadm -S -n:\n{s}"))
        }
    })();
    r.check("golden.new-service-fwmark6", res);

    let res = (|| {
        let replies = c.request_bytes(&golden::GET_SERVICE_DUMP).map_err(e2s)?;
        let keys: BTreeSet<String> = replies
            .iter()
            .filter_map(|m| m.service())
            .map(|a| {
                convert::service_from_attrs(a)
                    .map(|(s, _)| s.key.list_name())
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        if keys.len() == 2 {
            Ok(format!("dump: {keys:?}"))
        } else {
            Err(format!("dump returned {keys:?}"))
        }
    })();
    r.check("golden.get-service-dump", res);

    let res = (|| {
        c.request_bytes(&golden::DEL_DEST).map_err(e2s)?;
        expect_state(c, &mh, vec![])?;
        c.request_bytes(&golden::FLUSH).map_err(e2s)?;
        match c.services().map_err(e2s)?.len() {
            0 => Ok("DEL_DEST and FLUSH bytes accepted".into()),
            n => Err(format!("{n} services after FLUSH")),
        }
    })();
    r.check("golden.del-dest+flush", res);
}

fn sched_vip(i: usize) -> ServiceKey {
    ServiceKey::tcp(SocketAddr::new(
        IpAddr::V4([198, 18, 1, 10 + i as u8].into()),
        80,
    ))
}

/// For every scheduler: a TCP service with three DR real servers; edit,
/// drain, delete; ipvsadm must list it exactly as we format it.
fn schedulers(c: &mut Client, r: &mut Report) {
    let rs = |n: u8| Destination::dr(SocketAddr::new(IpAddr::V4([198, 18, 0, n].into()), 80));
    for (i, name) in SCHEDULERS.iter().enumerate() {
        let key = sched_vip(i);
        let sched = Scheduler::from(*name);
        let hashing = matches!(sched, Scheduler::Mh | Scheduler::Sh);
        let mut svc = Service::new(key, sched.clone());
        if hashing {
            svc = svc.flags(ServiceFlags::SCHED2); // mh-port / sh-port, no fallback yet
        }
        let res = (|| {
            c.add_service(&svc).map_err(e2s)?;
            for n in [11, 12, 13] {
                c.add_dest(&key, &rs(n)).map_err(e2s)?;
            }
            expect_state(c, &svc, vec![rs(11), rs(12), rs(13)])
        })();
        r.check(&format!("{name}.create"), res);

        let res = (|| {
            let e = c.service(&key).map_err(e2s)?;
            let vip = text::addr_port(&key_addr(&key), 80);
            same_text(
                "ipvsadm -L -n -t",
                &text::format_list(None, &[e], ListOptions::default()),
                &ipvsadm(&["-L", "-n", "-t", &vip])?,
            )
        })();
        r.check(&format!("{name}.ipvsadm-list"), res);

        let res = (|| {
            c.edit_dest(&key, &rs(12).weight(5)).map_err(e2s)?;
            expect_state(c, &svc, vec![rs(11), rs(12).weight(5), rs(13)])
        })();
        r.check(&format!("{name}.edit-weight"), res);

        let res = (|| {
            let out = c.drain_dest(&key, ip("198.18.0.13"), 80).map_err(e2s)?;
            let mut want = svc.clone();
            if hashing {
                want.flags.insert(ServiceFlags::SCHED1);
            }
            if out.enabled_fallback != hashing {
                return Err(format!(
                    "enabled_fallback = {} for {name}",
                    out.enabled_fallback
                ));
            }
            expect_state(c, &want, vec![rs(11), rs(12).weight(5), rs(13).weight(0)])?;
            Ok(if hashing {
                format!("weight 0; {name} had no fallback: now {}", want)
            } else {
                "weight 0".into()
            })
        })();
        r.check(&format!("{name}.drain"), res);

        let res = (|| {
            c.del_dest(&key, ip("198.18.0.11"), 80).map_err(e2s)?;
            let mut want = svc.clone();
            if hashing {
                want.flags.insert(ServiceFlags::SCHED1);
            }
            expect_state(c, &want, vec![rs(12).weight(5), rs(13).weight(0)])
        })();
        r.check(&format!("{name}.del-dest"), res);
    }
}

fn key_addr(k: &ServiceKey) -> IpAddr {
    match k {
        ServiceKey::Inet { addr, .. } => *addr,
        ServiceKey::Fwmark { .. } => unreachable!(),
    }
}

fn tun_dest(addr: &str, kind: TunnelType, port: u16, flags: u16) -> Destination {
    let mut d = Destination::tun(sa(addr));
    d.tunnel = Tunnel { kind, port, flags };
    d
}

/// IPv6, UDP, SCTP, fwmark, persistence, one-packet, pe, NAT/TUN real servers.
fn variety(c: &mut Client, r: &mut Report) {
    // IPv6 DR service: the full life cycle
    let k6 = ServiceKey::tcp(sa("[2001:db8::100]:80"));
    let s6 = Service::new(k6, "mh").flags(ServiceFlags::MH_PORT);
    let d6 = |n: &str| Destination::dr(sa(&format!("[2001:db8::{n}]:80")));
    let res = (|| {
        c.add_service(&s6).map_err(e2s)?;
        for n in ["11", "12", "13"] {
            c.add_dest(&k6, &d6(n)).map_err(e2s)?;
        }
        expect_state(c, &s6, vec![d6("11"), d6("12"), d6("13")])
    })();
    r.check("v6.create", res);
    let res = (|| {
        c.edit_dest(&k6, &d6("12").weight(3)).map_err(e2s)?;
        let out = c.drain_dest(&k6, ip("2001:db8::13"), 80).map_err(e2s)?;
        c.del_dest(&k6, ip("2001:db8::11"), 80).map_err(e2s)?;
        let mut want = s6.clone();
        want.flags.insert(ServiceFlags::MH_FALLBACK);
        if !out.enabled_fallback {
            return Err("mh drain did not enable mh-fallback".into());
        }
        expect_state(c, &want, vec![d6("12").weight(3), d6("13").weight(0)])
    })();
    r.check("v6.edit+drain+del", res);

    let mut services: Vec<(&str, Service, Vec<Destination>)> = vec![
        (
            "udp-ops-nat-tun",
            Service::new(ServiceKey::udp(sa("198.18.0.101:53")), "wrr")
                .flags(ServiceFlags::ONE_PACKET),
            vec![
                Destination::nat(sa("198.18.0.11:5353"))
                    .weight(65535)
                    .thresholds(100, 10),
                tun_dest("198.18.0.12:53", TunnelType::Ipip, 0, 0),
                tun_dest("198.18.0.14:53", TunnelType::Gue, 6080, Tunnel::CSUM),
                tun_dest("198.18.0.15:53", TunnelType::Gue, 6081, Tunnel::REMCSUM),
                tun_dest("198.18.0.16:53", TunnelType::Gre, 0, 0),
                tun_dest("[2001:db8::19]:53", TunnelType::Ipip, 0, 0),
            ],
        ),
        (
            "fwmark4",
            Service::new(ServiceKey::fwmark(42, Family::Inet), "wlc"),
            vec![
                Destination::dr(sa("198.18.0.11:0")),
                Destination::dr(sa("198.18.0.12:0")).weight(2),
            ],
        ),
        (
            "fwmark6-persistent",
            Service::new(ServiceKey::fwmark(43, Family::Inet6), "lc")
                .persistent(360)
                .netmask(Netmask::V6(64)),
            vec![Destination::dr(sa("[2001:db8::21]:0"))],
        ),
        (
            "sctp-persistent-mask",
            Service::new(ServiceKey::sctp(sa("198.18.0.102:5000")), "sed")
                .persistent(60)
                .netmask(Netmask::V4("255.255.255.0".parse().unwrap())),
            vec![Destination::dr(sa("198.18.0.11:5000"))],
        ),
        (
            "udp-pe-sip",
            Service::new(ServiceKey::udp(sa("198.18.0.104:5060")), "rr")
                .persistent(60)
                .pe("sip"),
            vec![Destination::dr(sa("198.18.0.11:5060"))],
        ),
        (
            "v6-sh-flags-persistent",
            Service::new(ServiceKey::tcp(sa("[2001:db8::101]:443")), "sh")
                .flags(ServiceFlags::SH_FALLBACK | ServiceFlags::SH_PORT)
                .persistent(100)
                .netmask(Netmask::V6(48)),
            vec![Destination::dr(sa("[2001:db8::11]:443")).weight(7)],
        ),
    ];
    for (name, s, dests) in services.drain(..) {
        let res = (|| {
            c.add_service(&s).map_err(e2s)?;
            for d in &dests {
                c.add_dest(&s.key, d).map_err(e2s)?;
            }
            expect_state(c, &s, dests.clone())
        })();
        r.check(&format!("svc.{name}"), res);
    }
    // edit a service in place (SET_SERVICE): scheduler and persistence change
    let res = (|| {
        let k = ServiceKey::udp(sa("198.18.0.104:5060"));
        let s = Service::new(k, "wlc").persistent(120).pe("sip");
        c.edit_service(&s).map_err(e2s)?;
        expect_state(c, &s, vec![Destination::dr(sa("198.18.0.11:5060"))])
    })();
    r.check("svc.edit-service", res);
}

/// save → flush → restore gives the same table; also through `ipvsadm -R`.
fn save_restore(c: &mut Client, r: &mut Report) {
    let before = match c.services() {
        Ok(b) => b,
        Err(e) => return r.check("restore.read", Err(e2s(e))),
    };
    let ipvsadm_before = ipvsadm(&["-S", "-n"]).unwrap_or_default();
    let text = text::save(&before, SaveDialect::Lossless);
    let res = (|| {
        let rules = text::parse_rules(&text).map_err(|e| e.to_string())?;
        if rules != text::rules_of(&before) {
            return Err("parse(save(state)) != rules_of(state)".into());
        }
        c.flush().map_err(e2s)?;
        if !c.services().map_err(e2s)?.is_empty() {
            return Err("not empty after flush".into());
        }
        c.restore(&text).map_err(e2s)?;
        let after = c.services().map_err(e2s)?;
        if normalized(&after) != normalized(&before) {
            return Err(format!("state differs after restore\nsaved:\n{text}"));
        }
        same_text(
            "ipvsadm -S -n before/after",
            &ipvsadm(&["-S", "-n"])?,
            &ipvsadm_before,
        )?;
        Ok(format!(
            "{} rules, {} services restored",
            rules.len(),
            after.len()
        ))
    })();
    r.check("restore.lbctl", res);

    let res = (|| {
        c.flush().map_err(e2s)?;
        ipvsadm_stdin(&["-R"], Some(&text))?;
        let after = c.services().map_err(e2s)?;
        if normalized(&after) != normalized(&before) {
            return Err("state differs after ipvsadm -R of lbctl's save".into());
        }
        Ok("ipvsadm -R reads lbctl's lossless save (thresholds included)".into())
    })();
    r.check("restore.via-ipvsadm-R", res);

    let res = (|| {
        c.flush().map_err(e2s)?;
        ipvsadm_stdin(&["-R"], Some(&ipvsadm_before))?;
        let theirs = c.services().map_err(e2s)?;
        // ipvsadm's own save drops real-server thresholds: that is the only loss
        let strip = |v: &[ServiceEntry]| {
            normalized(v)
                .into_iter()
                .map(|(s, d)| {
                    (
                        s,
                        d.into_iter()
                            .map(|x| x.thresholds(0, 0))
                            .collect::<Vec<_>>(),
                    )
                })
                .collect::<Vec<_>>()
        };
        if strip(&theirs) != strip(&before) {
            return Err("ipvsadm -S | ipvsadm -R changed more than thresholds".into());
        }
        c.flush().map_err(e2s)?;
        c.restore(&text).map_err(e2s)?;
        Ok("ipvsadm -S -n | ipvsadm -R loses only thresholds (lbctl's Lossless keeps them)".into())
    })();
    r.check("restore.ipvsadm-roundtrip", res);
}

fn delete_services(c: &mut Client, r: &mut Report) {
    for (i, name) in SCHEDULERS.iter().enumerate() {
        let key = sched_vip(i);
        let res = (|| {
            c.del_service(&key).map_err(e2s)?;
            match find(&c.services().map_err(e2s)?, &key) {
                None => Ok(String::new()),
                Some(_) => Err("still listed".into()),
            }
        })();
        r.check(&format!("{name}.del-service"), res);
    }
}

fn errors(c: &mut Client, r: &mut Report) {
    let key = ServiceKey::tcp(sa("198.18.3.1:80"));
    let svc = Service::new(key, "rr");
    let res = c.add_service(&svc).map_err(e2s).and_then(|_| {
        c.add_dest(&key, &Destination::dr(sa("198.18.0.11:80")))
            .map_err(e2s)
            .map(|_| String::new())
    });
    r.check("err.setup", res);

    let res = expect_kernel_err(c.add_service(&svc), libc::EEXIST, "service already exists");
    r.check("err.duplicate-service", res);
    let res = expect_kernel_err(
        c.add_dest(&key, &Destination::dr(sa("198.18.0.11:80"))),
        libc::EEXIST,
        "destination already exists",
    );
    r.check("err.duplicate-dest", res);

    let res = refused(
        c,
        |c| c.add_dest(&key, &Destination::dr(sa("198.18.0.12:8080"))),
        |e| {
            matches!(
                e,
                ValidationError::PortMismatch {
                    service_port: 80,
                    dest_port: 8080,
                    ..
                }
            )
        },
    );
    r.check("err.dr-port-mismatch", res);
    let res = (|| {
        // for contrast: ipvsadm silently rewrites the port
        ipvsadm(&["-a", "-t", "198.18.3.1:80", "-r", "198.18.0.12:8080", "-g"])?;
        let e = c.service(&key).map_err(e2s)?;
        let d = dest_set(&e.dests);
        if d.iter()
            .any(|d| d.addr == ip("198.18.0.12") && d.port == 80)
        {
            c.del_dest(&key, ip("198.18.0.12"), 80).map_err(e2s)?;
            Ok("ipvsadm -a ... -r 198.18.0.12:8080 -g created 198.18.0.12:80 (lbctl refuses instead)".into())
        } else {
            Err(format!("unexpected: {d:?}"))
        }
    })();
    r.check("err.dr-port-mismatch-ipvsadm-rewrites", res);

    let res = refused(
        c,
        |c| c.add_service(&Service::new(ServiceKey::tcp(sa("198.18.3.2:80")), "bogus")),
        |e| matches!(e, ValidationError::UnknownScheduler(_)),
    );
    r.check("err.unknown-scheduler", res);
    let res = expect_kernel_err(
        c.add_service_unvalidated(&Service::new(ServiceKey::tcp(sa("198.18.3.2:80")), "bogus")),
        libc::ENOENT,
        "scheduler or persistence engine not found",
    );
    r.check("err.unknown-scheduler-kernel", res);
    let res = expect_kernel_err(
        c.add_service(&Service::new(ServiceKey::tcp(sa("198.18.3.2:80")), "twos")),
        libc::ENOENT,
        "modprobe ip_vs_twos",
    );
    r.check("err.scheduler-module-missing", res);

    let res = expect_kernel_err(
        c.del_service(&ServiceKey::tcp(sa("198.18.3.9:80"))),
        libc::ESRCH,
        "no such service",
    );
    r.check("err.del-missing-service", res);
    let res = expect_kernel_err(
        c.edit_service(&Service::new(ServiceKey::tcp(sa("198.18.3.9:80")), "rr")),
        libc::ESRCH,
        "no such service",
    );
    r.check("err.edit-missing-service", res);
    let res = expect_kernel_err(
        c.service(&ServiceKey::tcp(sa("198.18.3.9:80"))),
        libc::ESRCH,
        "no such service",
    );
    r.check("err.get-missing-service", res);
    let res = expect_kernel_err(
        c.add_dest(
            &ServiceKey::tcp(sa("198.18.3.9:80")),
            &Destination::dr(sa("198.18.0.11:80")),
        ),
        libc::ESRCH,
        "service not defined",
    );
    r.check("err.dest-of-missing-service", res);
    let res = expect_kernel_err(
        c.edit_dest(&key, &Destination::dr(sa("198.18.0.99:80")).weight(2)),
        libc::ENOENT,
        "no such destination",
    );
    r.check("err.edit-missing-dest", res);
    let res = expect_kernel_err(
        c.del_dest(&key, ip("198.18.0.99"), 80),
        libc::ENOENT,
        "no such destination",
    );
    r.check("err.del-missing-dest", res);

    let bad = Destination::dr(sa("198.18.0.13:80")).thresholds(5, 10);
    let res = refused(
        c,
        |c| c.add_dest(&key, &bad),
        |e| matches!(e, ValidationError::ThresholdOrder { .. }),
    );
    r.check("err.thresholds", res);
    let res = expect_kernel_err(
        c.request_raw(convert::new_dest(&key, &bad), false),
        libc::ERANGE,
        "out of range",
    );
    r.check("err.thresholds-kernel", res);
    let heavy = Destination::dr(sa("198.18.0.13:80")).weight(1 << 31);
    let res = refused(
        c,
        |c| c.add_dest(&key, &heavy),
        |e| matches!(e, ValidationError::WeightOutOfRange(_)),
    );
    r.check("err.weight", res);
    let res = expect_kernel_err(
        c.request_raw(convert::new_dest(&key, &heavy), false),
        libc::ERANGE,
        "out of range",
    );
    r.check("err.weight-kernel", res);

    let v6 = Destination::dr(sa("[2001:db8::13]:80"));
    let res = refused(
        c,
        |c| c.add_dest(&key, &v6),
        |e| matches!(e, ValidationError::FamilyMismatch { .. }),
    );
    r.check("err.family-mismatch", res);
    let res = match c.request_raw(convert::new_dest(&key, &v6), false) {
        Err(e @ Error::Kernel { .. }) => Ok(format!("kernel: {e}")),
        other => Err(format!(
            "kernel accepted a DR real server of another family: {other:?}"
        )),
    };
    r.check("err.family-mismatch-kernel", res);

    let res = refused(
        c,
        |c| {
            c.add_service(
                &Service::new(ServiceKey::tcp(sa("198.18.3.3:80")), "rr")
                    .flags(ServiceFlags::ONE_PACKET),
            )
        },
        |e| matches!(e, ValidationError::OnePacketNotUdp),
    );
    r.check("err.one-packet-tcp", res);

    // restore is all-or-nothing at validation time
    let n = c.requests_sent();
    let res =
        match c.restore("-A -t 198.18.3.4:80 -s rr\n-a -t 198.18.3.4:80 -r 198.18.0.11:81 -g\n") {
            Err(Error::Invalid {
                source: ValidationError::PortMismatch { .. },
                ..
            }) if c.requests_sent() == n => {
                match find(
                    &c.services().unwrap_or_default(),
                    &ServiceKey::tcp(sa("198.18.3.4:80")),
                ) {
                    None => Ok("nothing applied".into()),
                    Some(_) => Err("first rule was applied".into()),
                }
            }
            other => Err(format!("{other:?}")),
        };
    r.check("err.restore-validates-first", res);

    let res = c.del_service(&key).map_err(e2s).map(|_| String::new());
    r.check("err.cleanup", res);
}

/// What ipvsadm creates, lbctl lists identically (model and text).
fn created_by_ipvsadm(c: &mut Client, r: &mut Report) {
    let cmds: [&[&str]; 10] = [
        &["-C"],
        &[
            "-A",
            "-t",
            "198.18.2.1:80",
            "-s",
            "wrr",
            "-p",
            "120",
            "-M",
            "255.255.255.0",
        ],
        &[
            "-a",
            "-t",
            "198.18.2.1:80",
            "-r",
            "198.18.0.11:80",
            "-g",
            "-w",
            "3",
        ],
        &[
            "-a",
            "-t",
            "198.18.2.1:80",
            "-r",
            "198.18.0.12",
            "-g",
            "-w",
            "0",
        ],
        &[
            "-A",
            "-t",
            "[2001:db8::200]:443",
            "-s",
            "mh",
            "-b",
            "mh-fallback,mh-port",
        ],
        &[
            "-a",
            "-t",
            "[2001:db8::200]:443",
            "-r",
            "[2001:db8::21]:443",
            "-g",
        ],
        &["-A", "-f", "99", "-6", "-s", "lc", "-p", "-M", "56"],
        &["-A", "-u", "198.18.2.2:53", "-s", "rr", "-o"],
        &[
            "-a",
            "-u",
            "198.18.2.2:53",
            "-r",
            "198.18.0.13:5353",
            "-m",
            "-w",
            "10",
            "-x",
            "50",
            "-y",
            "5",
        ],
        &[
            "-a",
            "-u",
            "198.18.2.2:53",
            "-r",
            "198.18.0.14:53",
            "-i",
            "--tun-type",
            "gue",
            "--tun-port",
            "6080",
            "--tun-remcsum",
        ],
    ];
    let res = cmds
        .iter()
        .try_for_each(|a| ipvsadm(a).map(|_| ()))
        .map(|_| format!("{} ipvsadm commands", cmds.len()));
    r.check("ipvsadm-created.setup", res);

    let res = (|| {
        let got = c.services().map_err(e2s)?;
        let remcsum = got
            .iter()
            .flat_map(|e| e.dests.iter())
            .find(|d| d.dest.fwd == Forward::Tun)
            .map(|d| d.dest.tunnel.flags)
            .unwrap_or(0xffff);
        let want = vec![
            ServiceEntry {
                service: Service::new(ServiceKey::tcp(sa("198.18.2.1:80")), "wrr")
                    .persistent(120)
                    .netmask(Netmask::V4("255.255.255.0".parse().unwrap())),
                stats: Default::default(),
                dests: vec![],
            },
            ServiceEntry {
                service: Service::new(ServiceKey::tcp(sa("[2001:db8::200]:443")), "mh")
                    .flags(ServiceFlags::MH_FALLBACK | ServiceFlags::MH_PORT),
                stats: Default::default(),
                dests: vec![],
            },
            ServiceEntry {
                service: Service::new(ServiceKey::fwmark(99, Family::Inet6), "lc")
                    .persistent(360)
                    .netmask(Netmask::V6(56)),
                stats: Default::default(),
                dests: vec![],
            },
            ServiceEntry {
                service: Service::new(ServiceKey::udp(sa("198.18.2.2:53")), "rr")
                    .flags(ServiceFlags::ONE_PACKET),
                stats: Default::default(),
                dests: vec![],
            },
        ];
        let want_dests: Vec<(ServiceKey, Vec<Destination>)> = vec![
            (
                ServiceKey::tcp(sa("198.18.2.1:80")),
                vec![
                    Destination::dr(sa("198.18.0.11:80")).weight(3),
                    Destination::dr(sa("198.18.0.12:80")).weight(0),
                ],
            ),
            (
                ServiceKey::tcp(sa("[2001:db8::200]:443")),
                vec![Destination::dr(sa("[2001:db8::21]:443"))],
            ),
            (ServiceKey::fwmark(99, Family::Inet6), vec![]),
            (
                ServiceKey::udp(sa("198.18.2.2:53")),
                vec![
                    Destination::nat(sa("198.18.0.13:5353"))
                        .weight(10)
                        .thresholds(50, 5),
                    tun_dest("198.18.0.14:53", TunnelType::Gue, 6080, remcsum),
                ],
            ),
        ];
        if remcsum & Tunnel::REMCSUM == 0 {
            return Err(format!("--tun-remcsum came back as flags {remcsum:#x}"));
        }
        for w in &want {
            let g = find(&got, &w.service.key)
                .ok_or_else(|| format!("{} missing", w.service.key.list_name()))?;
            if g.service != w.service {
                return Err(format!(
                    "service differs\nwant {:?}\ngot  {:?}",
                    w.service, g.service
                ));
            }
        }
        for (k, d) in want_dests {
            let g = find(&got, &k).ok_or("missing")?;
            if dest_set(&g.dests) != sorted_dests(d.clone()) {
                return Err(format!(
                    "real servers of {} differ\nwant {d:?}\ngot  {:?}",
                    k.list_name(),
                    dest_set(&g.dests)
                ));
            }
        }
        if got.len() != want.len() {
            return Err(format!(
                "{} services listed, want {}",
                got.len(),
                want.len()
            ));
        }
        Ok(format!(
            "4 services as modelled; kernel tun flags for --tun-remcsum = {remcsum:#x}"
        ))
    })();
    r.check("ipvsadm-created.model", res);

    for (name, kind, args) in [
        ("ipvsadm-created.list", ListKind::Plain, &["-L", "-n"][..]),
        (
            "ipvsadm-created.stats",
            ListKind::Stats,
            &["-L", "-n", "--stats"][..],
        ),
        (
            "ipvsadm-created.thresholds",
            ListKind::Thresholds,
            &["-L", "-n", "--thresholds"][..],
        ),
        (
            "ipvsadm-created.tun-info",
            ListKind::TunInfo,
            &["-L", "-n", "--tun-info"][..],
        ),
    ] {
        let res = list_cmp(c, kind, args);
        r.check(name, res);
    }
    let res = save_cmp(c);
    r.check("ipvsadm-created.save", res);

    let res = (|| {
        let rules = text::parse_rules(&ipvsadm(&["-S", "-n"])?).map_err(|e| e.to_string())?;
        let mine: Vec<Rule> = text::rules_of(&c.services().map_err(e2s)?)
            .into_iter()
            .map(|r| match r {
                Rule::AddDest(k, d) => Rule::AddDest(k, d.thresholds(0, 0)),
                r => r,
            })
            .collect();
        if rules == mine {
            Ok(format!(
                "{} rules parsed from ipvsadm -S -n equal the listed state",
                rules.len()
            ))
        } else {
            Err(format!("parsed {rules:?}\nlisted {mine:?}"))
        }
    })();
    r.check("ipvsadm-created.parse-save", res);
    let res = c.flush().map_err(e2s).map(|_| String::new());
    r.check("ipvsadm-created.flush", res);
}

fn config(c: &mut Client, r: &mut Report) {
    let res = (|| {
        let t = Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        };
        c.set_timeouts(&t).map_err(e2s)?;
        let got = c.timeouts().map_err(e2s)?;
        if got != t {
            return Err(format!("set {t:?}, read {got:?}"));
        }
        same_text(
            "ipvsadm -L -n --timeout",
            &text::format_timeouts(&got),
            &ipvsadm(&["-L", "-n", "--timeout"])?,
        )
    })();
    r.check("config.timeouts", res);
    let res = (|| {
        let k = ServiceKey::tcp(sa("198.18.4.1:80"));
        c.add_service(&Service::new(k, "rr")).map_err(e2s)?;
        c.zero(Some(&k)).map_err(e2s)?;
        c.zero(None).map_err(e2s)?;
        c.del_service(&k).map_err(e2s)?;
        expect_kernel_err(c.zero(Some(&k)), libc::ESRCH, "no such service")
    })();
    r.check("config.zero", res);
}

/// Child mode: drop root, then every IPVS command must fail with a privilege
/// error (GENL_ADMIN_PERM), while the nlctrl lookup itself works.
fn unprivileged_probe() -> ! {
    // SAFETY: plain syscalls, single-threaded at this point
    let ok = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(65534) == 0
            && libc::setuid(65534) == 0
    };
    if !ok {
        println!(
            "PROBE cannot drop privileges: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(2);
    }
    match Client::open().and_then(|mut c| c.info()) {
        Err(e @ Error::Permission { .. }) => {
            println!("PROBE permission-error {}", one_line(&e.to_string()))
        }
        other => println!("PROBE unexpected {other:?}"),
    }
    std::process::exit(0);
}

fn permission(r: &mut Report) {
    let res = (|| {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let out = Command::new(exe)
            .arg("--unprivileged-probe")
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        match text.strip_prefix("PROBE permission-error ") {
            Some(msg) if msg.contains("root") => Ok(format!("as uid 65534: {}", msg.trim())),
            _ => Err(text),
        }
    })();
    r.check("err.permission", res);
}

fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Local UDP clients through a DR service: counters become non-zero and the
/// --stats listings (also --exact) still match ipvsadm; ZERO resets them.
fn traffic(c: &mut Client, r: &mut Report) {
    let key = ServiceKey::udp(sa("198.18.5.1:9"));
    let res = (|| {
        run("ip", &["addr", "add", "198.18.5.1/32", "dev", "lo"])?;
        c.add_service(&Service::new(key, "rr")).map_err(e2s)?;
        c.add_dest(&key, &Destination::dr(sa("198.18.5.2:9")))
            .map_err(e2s)?;
        c.add_dest(&key, &Destination::dr(sa("198.18.5.3:9")))
            .map_err(e2s)?;
        let mut send_errors = 0;
        for _ in 0..20 {
            let s = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| e.to_string())?;
            if s.send_to(&[0u8; 100], "198.18.5.1:9").is_err() {
                send_errors += 1;
            }
        }
        let t = Instant::now();
        loop {
            let e = c.service(&key).map_err(e2s)?;
            let per_dest: u64 = e.dests.iter().map(|d| d.stats.conns).sum();
            if e.stats.conns == 20 && per_dest == 20 && e.stats.inpkts >= 20 {
                // (no OutPkts == 0 assertion here: these clients are local, so the
                // packets also pass IPVS's LOCAL_OUT hook; the DSR signal applies
                // to forwarded traffic only)
                return Ok(format!(
                    "after {:.1}s: conns {} inpkts {} inbytes {} outpkts {} ({} sends refused locally)",
                    t.elapsed().as_secs_f64(),
                    e.stats.conns,
                    e.stats.inpkts,
                    e.stats.inbytes,
                    e.stats.outpkts,
                    send_errors
                ));
            }
            if t.elapsed() > Duration::from_secs(10) {
                return Err(format!("counters never reached 20 conns: {:?}", e.stats));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    })();
    r.check("traffic.counted", res);
    let res = list_cmp(c, ListKind::Stats, &["-L", "-n", "--stats"]);
    r.check("traffic.stats", res);
    let res = (|| {
        let info = c.info().map_err(e2s)?;
        let entries = c.services().map_err(e2s)?;
        let mine = text::format_list(
            Some(&info),
            &entries,
            ListOptions {
                kind: ListKind::Stats,
                exact: true,
            },
        );
        same_text(
            "ipvsadm -L -n --stats --exact",
            &mine,
            &ipvsadm(&["-L", "-n", "--stats", "--exact"])?,
        )
    })();
    r.check("traffic.stats-exact", res);
    let res = (|| {
        c.zero(Some(&key)).map_err(e2s)?;
        let e = c.service(&key).map_err(e2s)?;
        if e.stats.conns != 0 {
            return Err(format!("conns {} after ZERO", e.stats.conns));
        }
        c.del_service(&key).map_err(e2s)?;
        run("ip", &["addr", "del", "198.18.5.1/32", "dev", "lo"])?;
        Ok("ZERO reset the counters".into())
    })();
    r.check("traffic.zero", res);
}

// =============================================================================================
// the real `lbctl lb` CLI (the lane appends a static lbctl as /bin/lbctl)
// =============================================================================================

const LBCTL: &str = "/bin/lbctl";

/// What one lbctl run gave.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn show(&self) -> String {
        format!(
            "exit {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Run lbctl with `args`, extra environment, optional stdin, optionally as another uid.
fn lbctl_full(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>, uid: Option<u32>) -> Run {
    use std::os::unix::process::CommandExt as _;
    let mut cmd = Command::new(LBCTL);
    cmd.args(args)
        .env("LBCTL_RUN_DIR", "/tmp/lbctl-run")
        .env_remove("LBCTL_FAIL_ON")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(u) = uid {
        cmd.uid(u).gid(u);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Run {
                code: -1,
                stdout: String::new(),
                stderr: format!("cannot run {LBCTL}: {e}"),
            }
        }
    };
    if let Some(text) = stdin {
        let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
    }
    match child.wait_with_output() {
        Ok(out) => Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        Err(e) => Run {
            code: -1,
            stdout: String::new(),
            stderr: e.to_string(),
        },
    }
}

fn lbctl(args: &[&str]) -> Run {
    lbctl_full(args, &[], None, None)
}

/// lbctl must exit with `code`, and its output must contain every string in `has`.
fn expect_run(run: &Run, code: i32, has: &[&str]) -> Result<(), String> {
    let all = format!("{}{}", run.stdout, run.stderr);
    if run.code != code {
        return Err(format!("wanted exit {code}\n{}", run.show()));
    }
    if let Some(missing) = has.iter().find(|h| !all.contains(**h)) {
        return Err(format!("output lacks {missing:?}\n{}", run.show()));
    }
    Ok(())
}

fn args(s: &str) -> Vec<&str> {
    s.split_whitespace().collect()
}

/// `lbctl ARGS` succeeds (exit 0) and prints every string in `has`.
fn ok_run(cmdline: &str, has: &[&str]) -> Result<Run, String> {
    let run = lbctl(&args(cmdline));
    expect_run(&run, 0, has).map_err(|e| format!("lbctl {cmdline}: {e}"))?;
    Ok(run)
}

/// The table as `ipvsadm -S -n` prints it must be exactly `want` (lines, any trailing newline).
fn expect_saved(want: &[&str]) -> Result<String, String> {
    let got = ipvsadm(&["-S", "-n"])?;
    let got_lines: Vec<&str> = got.lines().collect();
    if got_lines == want {
        Ok(format!("ipvsadm -S -n: {} rules as expected", want.len()))
    } else {
        Err(format!(
            "ipvsadm -S -n differs\n--- want ---\n{}\n--- got ---\n{got}",
            want.join("\n")
        ))
    }
}

/// Lines of stdout that are ipvsadm commands.
fn change_lines(run: &Run) -> Vec<String> {
    run.stdout
        .lines()
        .filter(|l| l.starts_with("ipvsadm "))
        .map(str::to_string)
        .collect()
}

fn expect_lines(what: &str, got: &[String], want: &[&str]) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!(
            "{what}: changes differ\n--- want ---\n{}\n--- got ---\n{}",
            want.join("\n"),
            got.join("\n")
        ))
    }
}

const LB_V1: &str = r#"
name = "vmtest"
[[service]]
vip = "198.18.3.1:80"
scheduler = "mh"
mh_port = true
mh_fallback = true
[[service.backend]]
rip = "198.18.0.11"
[[service.backend]]
rip = "198.18.0.12"
weight = 2
[[service.backend]]
rip = "198.18.0.13"

[[service]]
vip = "[2001:db8::300]:53"
protocol = "udp"
scheduler = "rr"
[[service.backend]]
rip = "2001:db8::11"

[[service]]
vip = "198.18.3.2:443"
scheduler = "wrr"
persistent = 300
netmask = "255.255.255.0"
[[service.backend]]
rip = "198.18.0.11"
"#;

/// v1 with: weight of .12 → 5, .13 removed, the IPv6 service removed, a fwmark service added.
const LB_V2: &str = r#"
name = "vmtest"
[[service]]
vip = "198.18.3.1:80"
scheduler = "mh"
mh_port = true
mh_fallback = true
[[service.backend]]
rip = "198.18.0.11"
[[service.backend]]
rip = "198.18.0.12"
weight = 5

[[service]]
vip = "198.18.3.2:443"
scheduler = "wrr"
persistent = 300
netmask = "255.255.255.0"
[[service.backend]]
rip = "198.18.0.11"

[[service]]
fwmark = 9
scheduler = "sh"
sched_flags = ["sh-port"]
[[service.backend]]
rip = "198.18.0.14"
"#;

fn write_file(path: &str, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("writing {path}: {e}"))
}

fn cli(c: &mut Client, r: &mut Report) {
    if !std::path::Path::new(LBCTL).exists() {
        r.check(
            "cli.binary",
            Err(format!("{LBCTL} is missing from the initramfs")),
        );
        return;
    }
    let res = c.flush().map_err(e2s).and_then(|_| expect_saved(&[]));
    r.check("cli.start-empty", res);

    // --- bad input: exit 2, nothing changed --------------------------------------------------
    let res = (|| {
        write_file(
            "/tmp/bad.toml",
            "[[service]]\nvip = \"198.18.3.1:80\"\nschedular = \"rr\"\n",
        )?;
        let mut seen = Vec::new();
        for (cmdline, has) in [
            (
                "lb backend add 198.18.3.1:80 198.18.0.11:8080",
                "DR forwarding does not change the destination port",
            ),
            (
                "lb service add 198.18.3.1:80 -s bogus",
                "unknown scheduler 'bogus'",
            ),
            ("lb service add 198.18.3.1 -s rr", "has no port"),
            (
                "lb service add 198.18.3.1:80 -s rr --mh-port",
                "mh scheduler only",
            ),
            ("lb apply -f /tmp/bad.toml", "unknown field `schedular`"),
            ("lb restore /tmp/bad.toml", "line 1"),
            (
                "lb backend add 198.18.3.1:80 198.18.0.11",
                "no service 198.18.3.1:80",
            ),
        ] {
            let run = lbctl(&args(cmdline));
            expect_run(&run, 2, &[has]).map_err(|e| format!("lbctl {cmdline}: {e}"))?;
            seen.push(run.stderr.lines().next().unwrap_or("").to_string());
        }
        expect_saved(&[])?;
        Ok(format!(
            "{} refusals, table untouched; e.g. {}",
            seen.len(),
            seen[0]
        ))
    })();
    r.check("cli.bad-input", res);

    // --- one-shot commands -------------------------------------------------------------------
    let res = (|| {
        ok_run(
            "lb service add 198.18.3.1:80 -s mh --mh-port",
            &[
                "ipvsadm -A -t 198.18.3.1:80 -s mh -b mh-port",
                "applied 1 change(s)",
            ],
        )?;
        ok_run(
            "lb service add 198.18.3.1:80 -s mh --mh-port",
            &["unchanged"],
        )?;
        let run = lbctl(&args("lb service add 198.18.3.1:80 -s rr"));
        expect_run(&run, 2, &["already exists with other settings"])?;
        expect_saved(&["-A -t 198.18.3.1:80 -s mh -b mh-port"])
    })();
    r.check("cli.service-add", res);

    let res = (|| {
        ok_run("lb backend add 198.18.3.1:80 198.18.0.11", &[])?;
        ok_run(
            "lb backend add 198.18.3.1:80 198.18.0.12:80 --weight 2",
            &["ipvsadm -a -t 198.18.3.1:80 -r 198.18.0.12:80 -g -w 2"],
        )?;
        ok_run(
            "lb backend add 198.18.3.1:80 198.18.0.12 -w 2",
            &["unchanged"],
        )?;
        ok_run(
            "lb backend edit 198.18.3.1:80 198.18.0.12 --weight 3",
            &["ipvsadm -e -t 198.18.3.1:80 -r 198.18.0.12:80 -g -w 3"],
        )?;
        expect_saved(&[
            "-A -t 198.18.3.1:80 -s mh -b mh-port",
            "-a -t 198.18.3.1:80 -r 198.18.0.11:80 -g -w 1",
            "-a -t 198.18.3.1:80 -r 198.18.0.12:80 -g -w 3",
        ])
    })();
    r.check("cli.backend-add-edit", res);

    let res = (|| {
        let run = ok_run(
            "lb drain 198.18.3.1:80 198.18.0.11",
            &["note: mh without mh-fallback", "turning mh-fallback on"],
        )?;
        expect_lines(
            "drain",
            &change_lines(&run),
            &[
                "ipvsadm -E -t 198.18.3.1:80 -s mh -b mh-fallback,mh-port",
                "ipvsadm -e -t 198.18.3.1:80 -r 198.18.0.11:80 -g -w 0",
            ],
        )?;
        ok_run("lb drain 198.18.3.1:80 198.18.0.11", &["already drained"])?;
        expect_saved(&[
            "-A -t 198.18.3.1:80 -s mh -b mh-fallback,mh-port",
            "-a -t 198.18.3.1:80 -r 198.18.0.11:80 -g -w 0",
            "-a -t 198.18.3.1:80 -r 198.18.0.12:80 -g -w 3",
        ])?;
        Ok(run.stdout.lines().next().unwrap_or("").to_string())
    })();
    r.check("cli.drain-mh", res);

    let res = (|| {
        ok_run(
            "lb service add [2001:db8::300]:53 --proto udp -s rr",
            &["ipvsadm -A -u [2001:db8::300]:53 -s rr"],
        )?;
        ok_run(
            "lb backend add [2001:db8::300]:53 2001:db8::11 --proto udp",
            &[],
        )?;
        ok_run("lb service add --fwmark 9 -s sh -b sh-port -p 120", &[])?;
        ok_run("lb backend add fwmark:9 198.18.0.14 -w 4", &[])?;
        ok_run("lb service add --fwmark 10 --ipv6 -s rr", &[])?;
        ok_run(
            "lb backend add fwmark:10 2001:db8::14 --ipv6 --method nat",
            &["ipvsadm -a -f 10 -6 -r [2001:db8::14]:0 -m -w 1"],
        )?;
        ok_run(
            "lb service add 198.18.3.3:25 -s lc -p 60 -M 255.255.0.0",
            &["ipvsadm -A -t 198.18.3.3:25 -s lc -p 60 -M 255.255.0.0"],
        )?;
        ok_run(
            "lb backend add 198.18.3.3:25 198.18.0.15:2525 --method nat -x 100 -y 10",
            &[],
        )?;
        Ok("IPv6, fwmark (v4 and v6), persistence with netmask, NAT with thresholds".into())
    })();
    r.check("cli.variety", res);

    // what ipvsadm creates, lbctl must list identically too
    let res = ipvsadm(&["-A", "-t", "198.18.3.4:8080", "-s", "wlc", "-p", "30"])
        .and_then(|_| {
            ipvsadm(&[
                "-a",
                "-t",
                "198.18.3.4:8080",
                "-r",
                "198.18.0.16",
                "-g",
                "-w",
                "7",
            ])
        })
        .map(|_| "added 198.18.3.4:8080 with ipvsadm".to_string());
    r.check("cli.ipvsadm-adds", res);

    for (name, lb_args, ipvsadm_args) in [
        ("cli.list", "lb list", &["-L", "-n"][..]),
        (
            "cli.list-stats",
            "lb list --stats",
            &["-L", "-n", "--stats"][..],
        ),
        (
            "cli.list-rate",
            "lb list --rate",
            &["-L", "-n", "--rate"][..],
        ),
        (
            "cli.list-one",
            "lb list [2001:db8::300]:53 --proto udp",
            &["-L", "-n", "-u", "[2001:db8::300]:53"][..],
        ),
    ] {
        let res = (|| {
            let run = lbctl(&args(lb_args));
            expect_run(&run, 0, &[])?;
            same_text(
                &format!("lbctl {lb_args} vs ipvsadm {}", ipvsadm_args.join(" ")),
                &run.stdout,
                &ipvsadm(ipvsadm_args)?,
            )
        })();
        r.check(name, res);
    }

    let res = (|| {
        let run = lbctl(&args("--json lb list"));
        expect_run(&run, 0, &[])?;
        let v: serde_json::Value =
            serde_json::from_str(&run.stdout).map_err(|e| format!("{e}\n{}", run.stdout))?;
        let services = v["services"].as_array().ok_or("no services array")?;
        let mh = services
            .iter()
            .find(|s| s["service"] == "198.18.3.1:80")
            .ok_or("198.18.3.1:80 missing")?;
        let flags = mh["flags"].to_string();
        let w0 = mh["backends"]
            .as_array()
            .and_then(|b| b.iter().find(|d| d["address"] == "198.18.0.11"))
            .map(|d| d["weight"].clone());
        if services.len() == 6 && flags == r#"["mh-fallback","mh-port"]"# && w0 == Some(0.into()) {
            Ok(format!(
                "{} services, version {}, mh flags {flags}",
                services.len(),
                v["version"]
            ))
        } else {
            Err(format!("unexpected JSON:\n{}", run.stdout))
        }
    })();
    r.check("cli.list-json", res);

    let res = (|| {
        let run = lbctl(&["lb", "save"]);
        expect_run(&run, 0, &[])?;
        // real servers with thresholds get -x/-y (ipvsadm -S drops them); compare without
        let mine: String = run
            .stdout
            .lines()
            .map(|l| l.replace(" -x 100 -y 10", "") + "\n")
            .collect();
        same_text(
            "lbctl lb save vs ipvsadm -S -n",
            &mine,
            &ipvsadm(&["-S", "-n"])?,
        )
    })();
    r.check("cli.save", res);

    // --- save → flush → restore, and restore's all-or-nothing --------------------------------
    let res = (|| {
        let saved = lbctl(&["lb", "save"]).stdout;
        write_file("/tmp/saved.rules", &saved)?;
        let before = ipvsadm(&["-S", "-n"])?;
        ipvsadm(&["-C"])?;
        ok_run("lb restore /tmp/saved.rules", &["applied"])?;
        let after = ipvsadm(&["-S", "-n"])?;
        if after != before {
            return Err(format!(
                "restore differs\n--- before ---\n{before}--- after ---\n{after}"
            ));
        }
        // the same rules again: refused up front (the services exist), nothing changed
        let run = lbctl_full(&["lb", "restore", "-"], &[], Some(&saved), None);
        expect_run(
            &run,
            2,
            &[
                "<stdin> line 1",
                "service already exists",
                "nothing was changed",
            ],
        )?;
        // --flush: the table already is the file's, so nothing to do
        ok_run("lb restore --flush /tmp/saved.rules", &["unchanged"])?;
        if ipvsadm(&["-S", "-n"])? != before {
            return Err("the table changed".into());
        }
        Ok(format!("{} rules round-tripped", saved.lines().count()))
    })();
    r.check("cli.restore-roundtrip", res);

    let res = (|| {
        let before = ipvsadm(&["-S", "-n"])?;
        // a real kernel refusal half-way: `twos` is known to lbctl but not to this 6.1 kernel
        write_file(
            "/tmp/partial.rules",
            "-A -t 198.18.3.50:80 -s rr\n-a -t 198.18.3.50:80 -r 198.18.0.11:80 -g -w 1\n-A -t 198.18.3.51:80 -s twos\n",
        )?;
        let run = lbctl(&args("lb restore /tmp/partial.rules"));
        expect_run(
            &run,
            2,
            &[
                "change 3 of 3 failed: ipvsadm -A -t 198.18.3.51:80 -s twos",
                "modprobe ip_vs_twos",
                "rolled back 2 applied change(s)",
            ],
        )?;
        if ipvsadm(&["-S", "-n"])? != before {
            return Err(format!(
                "table changed after a failed restore\n{}",
                run.show()
            ));
        }
        // an injected failure in a --flush restore (which deletes, edits and adds)
        write_file(
            "/tmp/other.rules",
            "-A -t 198.18.3.1:80 -s rr\n-a -t 198.18.3.1:80 -r 198.18.0.11:80 -g -w 1\n-A -t 198.18.3.60:80 -s rr\n-a -t 198.18.3.60:80 -r 198.18.0.12:80 -g -w 1\n",
        )?;
        let run = lbctl_full(
            &["lb", "restore", "--flush", "/tmp/other.rules"],
            &[("LBCTL_FAIL_ON", "-D -t 198.18.3.4:8080")],
            None,
            None,
        );
        expect_run(&run, 2, &["injected failure", "IPVS is as before"])?;
        let after = ipvsadm(&["-S", "-n"])?;
        if after != before {
            return Err(format!(
                "table changed after a rolled-back restore\n--- before ---\n{before}--- after ---\n{after}{}",
                run.show()
            ));
        }
        Ok(run.stderr.lines().last().unwrap_or("").to_string())
    })();
    r.check("cli.restore-rollback", res);

    // --- dry run and privilege ------------------------------------------------------------
    let res = (|| {
        let before = ipvsadm(&["-S", "-n"])?;
        let run = ok_run("--dry-run lb service del 198.18.3.1:80", &[])?;
        expect_lines(
            "dry run",
            &change_lines(&run),
            &["ipvsadm -D -t 198.18.3.1:80"],
        )?;
        let run = ok_run("--dry-run lb drain 198.18.3.1:80 198.18.0.12", &[])?;
        expect_lines(
            "dry run",
            &change_lines(&run),
            &["ipvsadm -e -t 198.18.3.1:80 -r 198.18.0.12:80 -g -w 0"],
        )?;
        if ipvsadm(&["-S", "-n"])? != before {
            return Err("a dry run changed the table".into());
        }
        Ok("printed ipvsadm lines, changed nothing".into())
    })();
    r.check("cli.dry-run", res);

    let res = (|| {
        let before = ipvsadm(&["-S", "-n"])?;
        let run = lbctl_full(&["lb", "list"], &[], None, Some(65534));
        expect_run(&run, 77, &["permission denied"])?;
        let run2 = lbctl_full(
            &args("lb service add 198.18.3.99:80 -s rr"),
            &[],
            None,
            Some(65534),
        );
        expect_run(&run2, 77, &["CAP_NET_ADMIN"])?;
        if ipvsadm(&["-S", "-n"])? != before {
            return Err("the table changed".into());
        }
        Ok(format!(
            "as uid 65534: {}",
            run.stderr.lines().next().unwrap_or("")
        ))
    })();
    r.check("cli.permission", res);

    // --- lb apply -f ------------------------------------------------------------------------
    let res = (|| {
        ipvsadm(&["-C"])?;
        // a foreign service that the LB file does not mention
        ipvsadm(&["-A", "-t", "198.18.3.200:25", "-s", "rr"])?;
        write_file("/tmp/lb.toml", LB_V1)?;
        let run = ok_run("lb apply -f /tmp/lb.toml", &["applied 8 change(s)"])?;
        expect_lines(
            "apply v1",
            &change_lines(&run),
            &[
                "ipvsadm -A -t 198.18.3.1:80 -s mh -b mh-fallback,mh-port",
                "ipvsadm -a -t 198.18.3.1:80 -r 198.18.0.11:80 -g -w 1",
                "ipvsadm -a -t 198.18.3.1:80 -r 198.18.0.12:80 -g -w 2",
                "ipvsadm -a -t 198.18.3.1:80 -r 198.18.0.13:80 -g -w 1",
                "ipvsadm -A -u [2001:db8::300]:53 -s rr",
                "ipvsadm -a -u [2001:db8::300]:53 -r [2001:db8::11]:53 -g -w 1",
                "ipvsadm -A -t 198.18.3.2:443 -s wrr -p 300 -M 255.255.255.0",
                "ipvsadm -a -t 198.18.3.2:443 -r 198.18.0.11:443 -g -w 1",
            ],
        )?;
        expect_saved(&[
            "-A -t 198.18.3.1:80 -s mh -b mh-fallback,mh-port",
            "-a -t 198.18.3.1:80 -r 198.18.0.11:80 -g -w 1",
            "-a -t 198.18.3.1:80 -r 198.18.0.12:80 -g -w 2",
            "-a -t 198.18.3.1:80 -r 198.18.0.13:80 -g -w 1",
            "-A -t 198.18.3.2:443 -s wrr -p 300 -M 255.255.255.0",
            "-a -t 198.18.3.2:443 -r 198.18.0.11:443 -g -w 1",
            "-A -t 198.18.3.200:25 -s rr",
            "-A -u [2001:db8::300]:53 -s rr",
            "-a -u [2001:db8::300]:53 -r [2001:db8::11]:53 -g -w 1",
        ])
    })();
    r.check("cli.apply", res);

    let res = (|| {
        let run = ok_run("lb apply -f /tmp/lb.toml", &["unchanged"])?;
        let json = lbctl(&args("--json lb apply -f /tmp/lb.toml"));
        expect_run(&json, 0, &[])?;
        let v: serde_json::Value =
            serde_json::from_str(&json.stdout).map_err(|e| format!("{e}: {}", json.stdout))?;
        if v["changes"].as_array().map(Vec::len) != Some(0) {
            return Err(format!("second apply planned changes: {}", json.stdout));
        }
        Ok(format!("0 changes: {}", run.stdout.trim()))
    })();
    r.check("cli.apply-again-0-changes", res);

    let v2_changes = [
        "ipvsadm -e -t 198.18.3.1:80 -r 198.18.0.12:80 -g -w 5",
        "ipvsadm -d -t 198.18.3.1:80 -r 198.18.0.13:80",
        "ipvsadm -A -f 9 -s sh -b sh-port",
        "ipvsadm -a -f 9 -r 198.18.0.14:0 -g -w 1",
        "ipvsadm -D -u [2001:db8::300]:53",
    ];
    let res = (|| {
        write_file("/tmp/lb.toml", LB_V2)?;
        let before = ipvsadm(&["-S", "-n"])?;
        let dry = ok_run("--dry-run lb apply -f /tmp/lb.toml", &[])?;
        expect_lines("dry run v2", &change_lines(&dry), &v2_changes)?;
        if ipvsadm(&["-S", "-n"])? != before {
            return Err("the dry run changed the table".into());
        }
        // an injected failure at the last change: everything before it is undone
        let run = lbctl_full(
            &args("lb apply -f /tmp/lb.toml"),
            &[("LBCTL_FAIL_ON", "-D -u")],
            None,
            None,
        );
        expect_run(
            &run,
            2,
            &[
                "change 5 of 5 failed",
                "rolled back 4 applied change(s); IPVS is as before",
            ],
        )?;
        let after = ipvsadm(&["-S", "-n"])?;
        if after != before {
            return Err(format!(
                "not rolled back\n--- before ---\n{before}--- after ---\n{after}"
            ));
        }
        Ok("dry run printed exactly the 5 changes; failure at 5/5 rolled back 4".into())
    })();
    r.check("cli.apply-diff-rollback", res);

    let res = (|| {
        let run = ok_run("lb apply -f /tmp/lb.toml", &["applied 5 change(s)"])?;
        expect_lines("apply v2", &change_lines(&run), &v2_changes)?;
        expect_saved(&[
            "-A -t 198.18.3.1:80 -s mh -b mh-fallback,mh-port",
            "-a -t 198.18.3.1:80 -r 198.18.0.11:80 -g -w 1",
            "-a -t 198.18.3.1:80 -r 198.18.0.12:80 -g -w 5",
            "-A -t 198.18.3.2:443 -s wrr -p 300 -M 255.255.255.0",
            "-a -t 198.18.3.2:443 -r 198.18.0.11:443 -g -w 1",
            "-A -t 198.18.3.200:25 -s rr",
            "-A -f 9 -s sh -b sh-port",
            "-a -f 9 -r 198.18.0.14:0 -g -w 1",
        ])?;
        ok_run("lb apply -f /tmp/lb.toml", &["unchanged"])?;
        Ok("only the differences applied; the foreign 198.18.3.200:25 was left alone".into())
    })();
    r.check("cli.apply-v2", res);

    let res = (|| {
        let run = ok_run("lb apply -f /tmp/lb.toml --prune", &["applied 1 change(s)"])?;
        expect_lines(
            "prune",
            &change_lines(&run),
            &["ipvsadm -D -t 198.18.3.200:25"],
        )?;
        // an LB file with no services removes what it created, and only that
        ipvsadm(&["-A", "-t", "198.18.3.201:25", "-s", "rr"])?;
        write_file("/tmp/lb.toml", "name = \"vmtest\"\n")?;
        ok_run("lb apply -f /tmp/lb.toml", &["applied 3 change(s)"])?;
        expect_saved(&["-A -t 198.18.3.201:25 -s rr"])?;
        ok_run(
            "lb service del 198.18.3.201:25",
            &["ipvsadm -D -t 198.18.3.201:25"],
        )?;
        ok_run("lb service del 198.18.3.201:25", &["unchanged"])?;
        expect_saved(&[])
    })();
    r.check("cli.apply-prune-and-cleanup", res);

    // --- one journal (issue 11): status lists IPVS services by owner; down --all removes
    // exactly them, and a foreign service survives -------------------------------------------
    let res = (|| {
        // Earlier checks flushed services lbctl created with `ipvsadm -C`, behind lbctl's
        // back: status reports them missing (drift) until down forgets them.
        let st = lbctl(&args("--json status"));
        expect_run(&st, 1, &["is missing"])?;
        // Deleting one of them through lbctl makes lbctl forget it.
        ok_run("lb service del 198.18.3.3:25", &["already gone"])?;
        let st = lbctl(&args("--json status"));
        if st.stdout.contains("198.18.3.3:25") {
            return Err(format!(
                "still recorded after lb service del:\n{}",
                st.stdout
            ));
        }
        ok_run("down --all", &[])?;
        ipvsadm(&["-C"])?;
        ipvsadm(&["-A", "-t", "198.18.3.202:25", "-s", "rr"])?;
        let before = ipvsadm(&["-S", "-n"])?;
        write_file("/tmp/lb.toml", LB_V1)?;
        ok_run("lb apply -f /tmp/lb.toml", &["applied 8 change(s)"])?;
        ok_run(
            "lb service add 198.18.3.203:80",
            &["ipvsadm -A -t 198.18.3.203:80"],
        )?;
        let st = lbctl(&args("--json status"));
        expect_run(&st, 0, &[])?;
        let v: serde_json::Value =
            serde_json::from_str(&st.stdout).map_err(|e| format!("{e}: {}", st.stdout))?;
        let names = |owner: &str| -> Vec<String> {
            v["by_owner"][owner]["ipvs_services"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["state"] == "present")
                .filter_map(|s| s["name"].as_str().map(str::to_string))
                .collect()
        };
        let want_lb = [
            "-t 198.18.3.1:80",
            "-t 198.18.3.2:443",
            "-u [2001:db8::300]:53",
        ];
        if names("lb:vmtest") != want_lb || names("cli") != ["-t 198.18.3.203:80"] {
            return Err(format!("status --json by owner:\n{}", st.stdout));
        }
        let down = ok_run("down --all", &["ipvsadm -D -t 198.18.3.1:80"])?;
        let after = ipvsadm(&["-S", "-n"])?;
        if after != before {
            return Err(format!(
                "down --all left\n{after}\nwanted\n{before}\n{}",
                down.show()
            ));
        }
        let st = lbctl(&args("--json status"));
        expect_run(&st, 0, &["\"owners\": []"])?;
        ipvsadm(&["-C"])?;
        Ok(
            "status: 3 services of lb:vmtest, 1 of cli; down --all left only the foreign one"
                .into(),
        )
    })();
    r.check("cli.journal-owners-down-all", res);

    // --- doctor --role lb reads IPVS: mh with a weight-0 server and no fallback is a finding ---
    let res = (|| {
        ipvsadm(&["-A", "-t", "198.18.3.50:80", "-s", "mh"])?;
        ipvsadm(&[
            "-a",
            "-t",
            "198.18.3.50:80",
            "-r",
            "198.18.3.61:80",
            "-g",
            "-w",
            "1",
        ])?;
        ipvsadm(&[
            "-a",
            "-t",
            "198.18.3.50:80",
            "-r",
            "198.18.3.62:80",
            "-g",
            "-w",
            "0",
        ])?;
        let status = |run: &Run| -> Result<String, String> {
            let v: serde_json::Value = serde_json::from_str(&run.stdout)
                .map_err(|e| format!("doctor --json: {e}: {}", run.stdout))?;
            let c = v["checks"]
                .as_array()
                .and_then(|a| a.iter().find(|c| c["id"] == "lb.service"))
                .ok_or("no lb.service check")?;
            Ok(format!(
                "{} {}",
                c["status"].as_str().unwrap_or(""),
                c["evidence"]
            ))
        };
        let run = lbctl(&args("--json doctor --role lb --vip 198.18.3.50:80"));
        let st = status(&run)?;
        if run.code != 1 || !st.starts_with("fail") || !st.contains("no fallback") {
            return Err(format!(
                "expected exit 1 and an mh fallback finding, got {}: {st}",
                run.code
            ));
        }
        ipvsadm(&[
            "-E",
            "-t",
            "198.18.3.50:80",
            "-s",
            "mh",
            "-b",
            "mh-fallback",
        ])?;
        let run = lbctl(&args("--json doctor --role lb --vip 198.18.3.50:80"));
        let st2 = status(&run)?;
        if !st2.starts_with("pass") {
            return Err(format!("with mh-fallback lb.service should pass: {st2}"));
        }
        ipvsadm(&["-D", "-t", "198.18.3.50:80"])?;
        Ok(format!(
            "mh weight 0 without fallback reported, with fallback passes ({st2})"
        ))
    })();
    r.check("cli.doctor-lb", res);
}
